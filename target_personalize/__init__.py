"""target-personalize: loads canonical clickstream into the bundled personalization engine."""
