"""Identity resolution and unified customer profiles (docs/identity.md once built).

Stitches the identifiers a person leaves in shop, chat and email into one profile.
"""
