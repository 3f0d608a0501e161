"""The active-response engine: policy, state, timed reverts, batched dispatch to an executor."""
