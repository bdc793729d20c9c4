"""Methods: thin recipes that compose the stages (data -> rewards -> pareto -> train -> generate -> evaluate)."""
