"""Services of the llm app: endpoints, generation jobs, the AI judge and its calibration."""
