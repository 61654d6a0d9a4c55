"""A sync HTTP starter with a durable client binding: the SDK's wrapper awaits it, so it cannot work."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start")
@app.durable_client_input(client_name="client")
def start(req: func.HttpRequest, client) -> func.HttpResponse:
    return func.HttpResponse("never")
