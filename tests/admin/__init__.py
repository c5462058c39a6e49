"""The compliance officers' admin, page by page."""
