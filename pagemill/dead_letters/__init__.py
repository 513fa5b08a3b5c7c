"""Dead letters: work that spent its attempts, recorded with its cause, listed and replayed by operators."""
