"""The commands beyond train: ablate, plan (dry run), eval, report, diagnose."""
