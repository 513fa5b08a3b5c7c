"""Jobs: submission, progress, results and cancellation."""
