"""The demo the README offers, run as a user would."""
