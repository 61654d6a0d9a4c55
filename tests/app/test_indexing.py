"""The app indexes as the worker expects: names, triggers, routes, methods and binding names."""

import inspect
import json
import typing

import azure.functions as func

from tests.support.worker import app_functions


def _bindings(name: str) -> list[dict]:
    return [json.loads(b) for b in app_functions()[name].get_raw_bindings()]


def test_exactly_the_expected_functions():
    assert sorted(app_functions()) == [
        "E2_BackupAndPrune",
        "E2_BackupSiteContent",
        "E2_CommitFileSegments",
        "E2_CopyFileToBlob",
        "E2_CountFiles",
        "E2_FindBackup",
        "E2_FinishBackup",
        "E2_GetFileList",
        "E2_ListBackupParts",
        "E2_PruneBackups",
        "E2_PruneDeleteSnapshots",
        "E2_PruneFindSnapshots",
        "E2_PruneFinish",
        "E2_PruneReadCatalog",
        "E2_PruneRemoveRuns",
        "E2_PruneSelectRuns",
        "E2_RestoreFiles",
        "E2_RestoreSiteContent",
        "E2_ScheduledBackup",
        "E2_StageFileSegment",
        "E2_VerifyFiles",
        "E2_VerifySiteBackup",
        "http_start",
        "list_backups",
        "show_backup",
    ]


def test_http_starter_route_method_auth_and_client_binding():
    bindings = {b["type"]: b for b in _bindings("http_start")}
    assert set(bindings) == {"httpTrigger", "durableClient", "http"}
    trigger = bindings["httpTrigger"]
    assert trigger["route"] == "orchestrators/{functionName}"
    assert trigger["methods"][0] == "POST"  # every method is routed, to answer the others in JSON
    assert trigger["authLevel"] == "FUNCTION"
    assert trigger["name"] == "req"
    assert bindings["durableClient"] == {"direction": "IN", "type": "durableClient", "name": "client"}
    assert bindings["http"]["name"] == "$return"


def test_the_timer_reads_its_schedule_from_an_app_setting_and_has_a_durable_client():
    bindings = {b["type"]: b for b in _bindings("E2_ScheduledBackup")}
    assert set(bindings) == {"timerTrigger", "durableClient"}
    assert bindings["timerTrigger"]["schedule"] == "%BACKUP_SCHEDULE%"
    assert bindings["timerTrigger"]["name"] == "timer"
    assert inspect.iscoroutinefunction(app_functions()["E2_ScheduledBackup"].get_user_function().client_function)


def test_starter_is_async_as_the_durable_client_wrapper_requires():
    user = app_functions()["http_start"].get_user_function()
    assert inspect.iscoroutinefunction(user.client_function)


def test_orchestrator_and_activity_triggers():
    assert _bindings("E2_BackupSiteContent") == [{"direction": "IN", "type": "orchestrationTrigger", "name": "context"}]
    assert _bindings("E2_GetFileList") == [{"direction": "IN", "type": "activityTrigger", "name": "rootDirectory"}]
    assert _bindings("E2_CopyFileToBlob") == [{"direction": "IN", "type": "activityTrigger", "name": "filePath"}]


def test_parameter_names_equal_binding_names():
    """The worker refuses a function whose parameters differ from its bindings (except $return)."""
    for name, fn in app_functions().items():
        user = fn.get_user_function()
        target = getattr(user, "client_function", None) or getattr(user, "orchestrator_function", None) or user
        params = set(inspect.signature(target).parameters)
        bound = {b.name for b in fn.get_bindings() if b.name != "$return"}
        assert params == bound, name


def test_host_json_matches_the_http_contract():
    with open("host.json") as f:
        host = json.load(f)
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {"id": "Microsoft.Azure.Functions.ExtensionBundle", "version": "[4.*, 5.0.0)"}
    assert host["extensions"]["http"]["routePrefix"] == ""
    assert host["extensions"]["durableTask"]["hubName"]


def test_app_level_auth_is_function():
    import function_app

    assert function_app.app.auth_level == func.AuthLevel.FUNCTION


def test_binding_annotations_are_what_the_worker_accepts():
    """The worker raises FunctionLoadError ("invalid non-type annotation") for a binding parameter
    annotated with a union or a PEP 585 generic such as dict[str, Any], and for a non-type return."""
    for name, fn in app_functions().items():
        hints = typing.get_type_hints(fn.get_user_function())
        bound = {b.name for b in fn.get_bindings()}
        for param, annotation in hints.items():
            if param in bound:
                assert isinstance(annotation, (type, typing._GenericAlias)), (name, param)
        has_return_binding = "$return" in bound
        if has_return_binding and "return" in hints:
            assert isinstance(hints["return"], type), name
