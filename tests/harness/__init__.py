"""Starts the real system for integration tests: redis-server, one daprd per service
and both apps under uvicorn, on free ports, and tears it all down again."""
