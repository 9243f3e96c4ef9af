"""The web chat: the /aide page, its websocket, the shared chat rooms, transcripts."""
