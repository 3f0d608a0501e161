"""From a raw log line to an alert: the analysis pipeline and the alerts.json format."""
