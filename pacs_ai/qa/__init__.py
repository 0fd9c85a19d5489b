"""Quality assurance of AI findings: reviews, queue and agreement statistics."""
