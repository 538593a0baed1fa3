"""Training jobs: submission, the status machine, recovery, and running one on a worker."""
