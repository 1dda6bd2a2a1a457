-- chat.lua: room chat. The room is the URL path (ws://host:8080/lobby joins
-- room "lobby"); every message goes to everyone in the room, the sender
-- included, prefixed with its sender's name.
--
-- Run it:   make run          (serves this file on port 8080)
--           or: luastrands serve examples/chat.lua --port 8080
-- Try it:   in two terminals,
--             python3 -m websockets "ws://127.0.0.1:8080/lobby?name=ada"
--             python3 -m websockets "ws://127.0.0.1:8080/lobby?name=bob"
--           and type: each line appears in both, as "ada: hello".
-- Edit this file while it runs: the next message follows the new code,
-- and nobody is disconnected.

local MAX_NAME = 32

function on_connection_request(request)
  local name = request.query.name
  if type(name) == "table" then name = name[1] end
  if name == nil or name == "" then
    -- No name given: make a short one from the client id.
    name = "guest-" .. request.context.client_id:sub(1, 8)
  end
  if #name > MAX_NAME or name:find("[%c]") then
    return false, 4000, "name must be 1 to 32 printable characters"
  end
  if request.context.room_id == "" then
    request.context.room_id = "lobby"
  end
  request.context.metadata.name = name
  return true
end

function on_new_connection(context)
  strands.send_room_message(context.room_id,
    "* " .. context.metadata.name .. " joined " .. context.room_id)
end

function on_message(message, context, is_binary)
  if is_binary then
    strands.send_private_message(context.client_id, "* binary messages are not relayed")
    return
  end
  strands.send_room_message(context.room_id, context.metadata.name .. ": " .. message)
end

function on_disconnect(context)
  strands.send_room_message(context.room_id, "* " .. context.metadata.name .. " left")
end
