"""The platform's AWS endpoint rules, for the services (which import only kit, model and
themselves): DynamoDB may live elsewhere than the rest of AWS (``AWS_ENDPOINT_URL_DYNAMODB``)."""

from chariot_migrate.aws_resources import DYNAMODB_ENV, dynamodb_endpoint

__all__ = ["DYNAMODB_ENV", "dynamodb_endpoint"]
