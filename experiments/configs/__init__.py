"""Named configs for the experiment binaries."""
