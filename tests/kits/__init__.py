"""Per-platform kits for the contract test: `tests/kits/<platform>.py` exports
`async def replay(operation, fixture)`, which runs one connector operation against a server
answering with the fixture (see tests/test_connector_contract.py)."""
