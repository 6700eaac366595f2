"""The Introducing Broker commission engine's pure rules: plans, the hierarchy, per-deal accrual,
period rules and settlement arithmetic. No I/O (see fxcrm.activities.ib for the database side)."""
