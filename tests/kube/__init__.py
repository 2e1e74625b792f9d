"""The real control plane tier: a Kubernetes control plane built from Go modules (README.md)."""
