-- echo.lua: every message goes back to its sender, text as text, binary as binary.
--
-- Run it:   luastrands serve examples/echo.lua --port 8080
--           (or: swift run luastrands serve examples/echo.lua)
-- Try it:   python3 -m websockets ws://127.0.0.1:8080/anything
--           then type a line; the same line comes back.

function on_message(message, context, is_binary)
  strands.send_private_message(context.client_id, message, { binary = is_binary })
end
