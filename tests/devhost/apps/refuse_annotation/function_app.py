"""An activity whose binding parameter is annotated with a parameterised generic: the worker refuses it."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="payload")
def describe(payload: dict[str, int]) -> int:
    return len(payload)
