"""Function definitions, kept thin: each one hands its trigger to the site_backup package."""
