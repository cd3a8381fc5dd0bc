"""End-to-end suite: a real Airflow 3 deployment with this provider, driven through its REST API."""
