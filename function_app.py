"""The Functions app: create it and register the blueprints. Nothing else lives here."""

import azure.durable_functions as df
import azure.functions as func

from blueprints.backup import bp as backup_blueprint
from blueprints.backups_api import bp as backups_api_blueprint
from blueprints.http_starter import bp as http_starter_blueprint
from blueprints.prune import bp as prune_blueprint
from blueprints.recovery import bp as recovery_blueprint
from blueprints.schedule import bp as schedule_blueprint

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(http_starter_blueprint)
app.register_functions(backup_blueprint)
app.register_functions(recovery_blueprint)
app.register_functions(backups_api_blueprint)
app.register_functions(prune_blueprint)
app.register_functions(schedule_blueprint)
