"""One training run: its directory, its preparation, the engine that trains it."""
