"""Protocol faces of the simulated hardware over the shared home physics."""
