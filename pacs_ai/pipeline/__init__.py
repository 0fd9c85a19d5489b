"""From stored study to job: stability, routing rules, the durable job queue, the dispatcher."""
