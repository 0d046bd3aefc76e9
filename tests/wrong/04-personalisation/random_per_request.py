"""Draws the cohort at random on every request: the split is right, nobody keeps a cohort."""
# exercise: 04-personalise
# rejected: not sticky
# instead of: cohort = list(weights)[-1]
import random

cohort = random.choices(list(weights), list(weights.values()))[0]
point = float("inf")
