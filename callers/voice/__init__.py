"""The Twilio voice line: menus, hold, callbacks, bridging, status callbacks."""
