"""The OCPP 1.6J central system: charge points' WebSocket links, their state, charging control."""
