"""The config's schema and its checks, and the run and sweep directories Hydra makes."""
