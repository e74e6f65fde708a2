"""Network helpers shared by the server and its link managers."""
