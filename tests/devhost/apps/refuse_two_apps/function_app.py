"""Two FunctionRegisters in one module: the worker refuses this."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
other_app = func.FunctionApp()


@app.activity_trigger(input_name="x")
def echo(x: str) -> str:
    return x
