"""What both services need to run on Dapr: the API-key and sidecar-token guards, and
reading a secret through the sidecar at start-up. Imported by services, never run."""
