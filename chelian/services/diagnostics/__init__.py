"""Remote diagnostics: trouble codes decoded and tracked, a health report, maintenance reminders."""
