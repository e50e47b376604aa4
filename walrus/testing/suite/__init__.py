"""The conformance tests behind ``--walrus-backend`` (collected only through the kit)."""
