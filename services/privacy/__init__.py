"""DSGVO/GDPR: consent records, export (Art. 15), erasure (Art. 17) and the suppression list."""
