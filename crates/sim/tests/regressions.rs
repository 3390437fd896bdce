//! Every seed that once broke a rule, kept: each must now keep every rule. The comment
//! on each says what it found (and the unit test that pins the fix down).

use canary_sim::{Config, run};

fn keeps_every_rule(seed: u64) {
    if let Err(failure) = run(seed, &Config::default()) {
        panic!("{failure}");
    }
}

/// A new image committed under `spec.paused` left the canary unjudged in its old phase
/// (decide: a_new_image_while_spec_paused_holds_the_canary_under_way_and_keeps_judging_it).
#[test]
fn seeds_5_and_13_a_new_image_under_spec_paused() {
    keeps_every_rule(5);
    keeps_every_rule(13);
}

/// `canary pause` before the first stage held the canary at 0% while saying Deploying
/// (decide: a_pause_before_the_first_stage_is_paused_and_resume_carries_on).
#[test]
fn seed_16_a_pause_before_the_first_stage() {
    keeps_every_rule(16);
}

/// A hand deploy over a promoted service made a canary of the stable revision
/// (decide: a_hand_deploy_over_a_promoted_service_waits_for_git_and_the_next_image_starts_from_it).
#[test]
fn seeds_66_and_155_a_hand_deploy_after_promotion() {
    keeps_every_rule(66);
    keeps_every_rule(155);
}

/// `canary promote` within warm-up: the judge's reversed reference range panicked, and
/// took the whole pass down (judge: a_stage_at_100_percent_right_after_a_short_one_…).
#[test]
fn seeds_80_120_139_a_promote_within_warm_up_panicked_the_pass() {
    for seed in [80, 120, 139] {
        keeps_every_rule(seed);
    }
}

/// A person's 50/50 split of a canary paused at 0% escaped the canary's triggers.
#[test]
fn seed_183_traffic_sent_to_a_canary_paused_before_its_first_stage() {
    keeps_every_rule(183);
}

/// `canary/stage-started` deleted by hand: the hold never ended and the triggers saw no
/// minutes (state: an_unreadable_stage_start_is_recovered_…).
#[test]
fn seed_210_an_unreadable_stage_start() {
    keeps_every_rule(210);
}

/// A promote asked before the manifest became invalid moved a frozen rollout's traffic.
#[test]
fn seed_235_a_request_while_frozen() {
    keeps_every_rule(235);
}

/// `canary/stable` deleted by hand: every rollback was refused (a traffic target with no
/// revision) while the canary failed half its requests.
#[test]
fn seed_253_an_unreadable_stable_revision() {
    keeps_every_rule(253);
}

/// `canary/phase` corrupted at 100%: canary "deployed" the serving revision beside itself.
#[test]
fn seed_284_an_unreadable_phase_at_full_weight() {
    keeps_every_rule(284);
}

/// Frozen before the first stage, then fixed with `spec.paused` still set: the pause
/// kept saying frozen, and a fixed manifest with `canary pause` never lifted.
#[test]
fn seed_599_a_manifest_cause_that_changed_before_the_first_stage() {
    keeps_every_rule(599);
}

/// After a hand deploy (the canary revision no longer made by the template, then
/// deleted), a promote asked before wrote traffic to a revision that no longer existed.
#[test]
fn seed_4339_a_promote_after_the_template_changed_outside_canary() {
    keeps_every_rule(4339);
}

/// No stable on record and canary's tags gone: rollbacks were refused and new images
/// could not deploy (decide: with_no_stable_on_record_a_rollback_and_a_deploy_use_what_serves).
#[test]
fn seeds_6476_and_11216_no_stable_revision_on_record() {
    keeps_every_rule(6476);
    keeps_every_rule(11216);
}

/// One revision under two tags was not "the sole revision", and was deployed beside
/// itself (decide: one_revision_under_two_tags_is_still_the_sole_revision).
#[test]
fn seed_7154_one_revision_under_two_tags() {
    keeps_every_rule(7154);
}

/// The 100,000-seed run's 19 failures, all one kind: a deploy waiting forever after a
/// hand edit took its tag or its start away
/// (decide: a_deploy_with_its_tag_or_its_start_edited_away_does_not_wait_forever).
#[test]
fn seeds_12972_and_19817_a_deploy_with_its_tag_or_start_edited_away() {
    keeps_every_rule(12972);
    keeps_every_rule(19817);
    keeps_every_rule(24164);
}

/// A shared incident while a person's 50/50 split stood: the pause took the canary to 0%
/// (allowed: a failed trigger takes the canary off, as a rollback does), and under a
/// frozen manifest the recovery would have moved traffic without a rollback — now a
/// rollout held by its manifest or already paused rolls back as before
/// (decide: traffic_set_by_hand_during_a_shared_incident_is_not_undone_on_recovery).
#[test]
fn seed_233_a_shared_incident_over_a_persons_split() {
    keeps_every_rule(233);
}
