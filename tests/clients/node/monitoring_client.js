// Google's official Cloud Monitoring Node client (@google-cloud/monitoring, REST
// fallback, a pass-through auth client) reads Cloud Run metrics from the canary
// emulator: request counts grouped by response_code_class, and a p95 through
// ALIGN_PERCENTILE_95.
//
// Usage: node monitoring_client.js http://127.0.0.1:PORT START_RFC3339 END_RFC3339
// Prints one JSON line with what it read; exits non-zero on any failure.

const {MetricServiceClient} = require('@google-cloud/monitoring');
const {PassThroughClient} = require('google-auth-library');

async function main() {
  const [base, start, end] = process.argv.slice(2);
  const url = new URL(base);
  const client = new MetricServiceClient({
    fallback: true,
    protocol: 'http',
    apiEndpoint: url.hostname,
    port: Number(url.port),
    authClient: new PassThroughClient(),
  });
  const seconds = (text) => ({seconds: Math.floor(Date.parse(text) / 1000)});
  const interval = {startTime: seconds(start), endTime: seconds(end)};

  const [counts] = await client.listTimeSeries({
    name: 'projects/demo',
    filter: 'metric.type="run.googleapis.com/request_count" AND resource.type="cloud_run_revision" AND resource.labels.service_name="api"',
    interval,
    aggregation: {
      alignmentPeriod: {seconds: 3600 * 24},
      perSeriesAligner: 'ALIGN_DELTA',
      crossSeriesReducer: 'REDUCE_SUM',
      groupByFields: ['metric.labels.response_code_class'],
    },
  });
  const byClass = {};
  for (const series of counts) {
    const cls = series.metric.labels.response_code_class;
    byClass[cls] = series.points.reduce((sum, p) => sum + Number(p.value.int64Value), 0);
  }

  const [latencies] = await client.listTimeSeries({
    name: 'projects/demo',
    filter: 'metric.type="run.googleapis.com/request_latencies" AND resource.labels.service_name="api"',
    interval,
    aggregation: {alignmentPeriod: {seconds: 3600 * 24}, perSeriesAligner: 'ALIGN_PERCENTILE_95'},
  });
  const p95 = latencies.map((s) => s.points[0].value.doubleValue);

  console.log(JSON.stringify({byClass, p95, series: counts.length, kinds: counts.map((s) => s.metricKind)}));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
