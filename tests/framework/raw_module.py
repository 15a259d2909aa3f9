# SPDX-License-Identifier: Apache-2.0
# Copyright contributors to everest-py
"""A module written without everest_py: plain paho-mqtt speaking EVerest's wire protocol.

Usage: python raw_module.py SOCKET PREFIX MODULE_ID; prints one JSON line of findings.
"""

import json
import queue
import sys
import uuid

import paho.mqtt.client as mqtt

sock, prefix, me = sys.argv[1], sys.argv[2].rstrip("/") + "/", sys.argv[3]
inbox: "queue.Queue[tuple[str, dict]]" = queue.Queue()
findings: dict = {}


def envelope(msg_type, data):
    return json.dumps({"msg_type": msg_type, "data": data})


def on_message(client, userdata, msg):
    payload = json.loads(msg.payload) if msg.payload else None
    cmd_prefix = f"{prefix}modules/{me}/impl/board_support/cmd/"
    if msg.topic.startswith(cmd_prefix) and "/response/" not in msg.topic:
        # A command of ours: answer it in EVerest's envelope.
        name = msg.topic[len(cmd_prefix) :]
        call = payload["data"]
        if name == "enable":
            event = {"event": "B" if call["args"]["value"] else "A"}
            client.publish(
                f"{prefix}modules/{me}/impl/board_support/var/event", envelope("Var", {"data": event}), qos=2
            )
        result = {"type": "result", "data": {"id": call["id"], "retval": None, "origin": me}}
        client.publish(f"{msg.topic}/response/{call['origin']}", envelope("CmdResult", result), qos=2)
        findings.setdefault("called", []).append([name, call["origin"], call["args"]])
        return
    inbox.put((msg.topic, payload))


def wait_for(topic, timeout=10.0):
    while True:
        t, p = inbox.get(timeout=timeout)
        if t == topic:
            return p


client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5, transport="unix")
client.on_message = on_message
client.connect(sock, 1883)
client.loop_start()
client.subscribe(f"{prefix}modules/{me}/response", qos=2)
client.subscribe(f"{prefix}ready", qos=2)
client.subscribe(f"{prefix}interface_definitions/evse_board_support", qos=2)
client.subscribe(f"{prefix}modules/{me}/impl/board_support/cmd/+", qos=2)

definition = wait_for(f"{prefix}interface_definitions/evse_board_support")
findings["definition_cmds"] = sorted(definition["data"]["cmds"])

request = {"type": "Get", "origin": me, "request": {"type": "Module"}}
client.publish(f"{prefix}config/request", envelope("GetConfig", request), qos=2)
response = wait_for(f"{prefix}modules/{me}/response")
findings["response_msg_type"] = response["msg_type"]
findings["status"] = response["data"]["status"]
config = response["data"]["response"]["data"]["module_config"]
findings["module_name"] = config["module_name"]
findings["standalone"] = config["standalone"]
findings["connections"] = {k: [c["module_id"], c["implementation_id"]] for k, [c] in config["connections"].items()}

client.publish(f"{prefix}modules/{me}/ready", envelope("ModuleReady", True), qos=2)
findings["global_ready"] = wait_for(f"{prefix}ready")


def call(requirement, cmd, args):
    target, impl = findings["connections"][requirement]
    topic = f"{prefix}modules/{target}/impl/{impl}/cmd/{cmd}"
    client.subscribe(f"{topic}/response/{me}", qos=2)
    call_id = str(uuid.uuid4())
    client.publish(topic, envelope("Cmd", {"id": call_id, "args": args, "origin": me}), qos=2)
    while True:
        answer = wait_for(f"{topic}/response/{me}")
        if answer["data"]["data"]["id"] == call_id:
            return answer


token = {"id_token": {"value": "RAW1", "type": "ISO14443"}, "authorization_type": "RFID"}
answer = call("validator", "validate_token", {"provided_token": token})
findings["validator_answer"] = answer
call("user", "store", {"key": "call_enable", "value": {"value": True}})
findings["user_events"] = call("user", "load", {"key": "events"})["data"]["data"]["retval"]
client.loop_stop()
client.disconnect()
print(json.dumps(findings))
