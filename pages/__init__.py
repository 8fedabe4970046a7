"""Site-wide pages: home, imprint, privacy notice, language switch, error pages.

Kept apart from ``core`` (which has no pages) and from the features.
"""
