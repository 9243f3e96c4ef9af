"""The coordinators' side: durable history, live dashboard, line controls and reports."""
