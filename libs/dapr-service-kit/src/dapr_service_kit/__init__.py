"""What both services need to run on Dapr: the state and secret ports with their adapters
on the process's one Dapr client (state_store, secrets, client) and the outcomes callers
handle (errors); the one optimistic read-modify-write (optimistic); the app around the
routes (app_setup: probes, the API-key and sidecar-token guards, logs, metrics, traces;
http_errors: the answer to each error); subscription answers; and in-memory fakes for
unit tests (testing). Imported by services, never run."""
