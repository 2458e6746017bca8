"""Local fake destination APIs for tests: threaded http.server on 127.0.0.1 with request validation and faults."""
