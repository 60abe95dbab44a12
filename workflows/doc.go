// Package workflows holds the Temporal workflows: DunningWorkflow, one run
// per failed invoice, and ReminderWorkflow, reminders before anything fails.
//
// The workflows are thin, deterministic loops. They ask the pure policy
// engine (package policy) what to do next and when, sleep on a durable timer
// until then while listening for signals and updates, and run activities
// (package activities) for everything that touches the world.
//
// Where to look:
//   - where a decline becomes a retry: policy.Policy.Next, fed by
//     decline.Classify through run.classifyGated (gated.go);
//   - where a charge is allowed: policy.Policy.MayCharge, asked by the main
//     loop (loopGated) before every attempt, scheduled or expedited;
//   - where money moves: run.chargeGated, the only caller of the
//     activities.Charges.Attempt activity.
//
// Changes to workflow logic go behind workflow.GetVersion ("sms-window",
// "decline-aware", "charge-gate"); testdata/histories holds recorded runs
// that every test run replays.
package workflows
