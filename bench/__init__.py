"""Speed measurements: scripts that print ratios against reference views (README.md here)."""
