"""The typed report and its writers (report.json, report.csv, report.html)."""
