"""The webhook trigger: MLflow's signed registry webhooks in, reconciles of the touched models out.

`receiver` (the Starlette app, the echo filter, `serve`), `signature` (MLflow's HMAC scheme), `payload`
(what a delivery means), `install` (creating the webhook through MLflow's client) and `process` (the
receiver as a loopback child, for end-to-end tests and benchmarks). docs/webhooks.md.
"""
