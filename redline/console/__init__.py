"""The on-call console: alerts, their signal and runbook, silences and page history (`redline console`)."""
