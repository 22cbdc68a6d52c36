"""Keeping outputs whole: one writer per folder (locks), content digests, clear write errors."""
