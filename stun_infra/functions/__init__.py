"""Code that runs in AWS Lambda: each module ships alone, with nothing but the runtime's boto3."""
