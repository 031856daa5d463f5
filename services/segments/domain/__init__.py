"""Pure segment logic: definitions, the rule language, evaluation with deadlines, transitions."""
