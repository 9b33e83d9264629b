import json

import azure.durable_functions as df
import azure.functions as func


async def start_orchestration(
    req: func.HttpRequest, client: str, res: func.Out[func.HttpResponse], context: func.Context
) -> None:
    durable = df.DurableOrchestrationClient(client)
    instance_id = await durable.start_new(
        req.route_params["functionName"], req.route_params.get("instanceId"), req.get_json()
    )
    body = {"id": instance_id, "startedBy": context.function_name}
    res.set(func.HttpResponse(json.dumps(body), status_code=202, mimetype="application/json"))
