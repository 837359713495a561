/**
 * primebridge notifier: tells primebridge that a sales order was created or changed, so it reads
 * the order at once instead of waiting for its next SuiteQL poll.
 *
 * Why afterSubmit: the record is already committed, so nothing here can stop or roll back the
 * user's save; every failure is caught and logged (primebridge's poll picks the order up anyway).
 * Why the skip rules: primebridge writes the Amazon ids back through REST web services, and this
 * script would otherwise announce primebridge's own write to primebridge (an echo loop).
 *
 * Script parameters (see README.md):
 *   custscript_pb_endpoint_url      https://primebridge.example.com/events/netsuite   (required)
 *   custscript_pb_token_secret      API Secret script id holding the shared token (preferred), or
 *   custscript_pb_token             the shared token itself (Free-Form Text)
 *   custscript_pb_skip_contexts     runtime.ContextType keys to ignore, comma separated
 *                                   (default "REST_WEBSERVICES")
 *   custscript_pb_integration_role  internal id of primebridge's role: its changes are ignored
 *   custscript_pb_integration_user  internal id of primebridge's user: its changes are ignored
 *
 * @NApiVersion 2.1
 * @NScriptType UserEventScript
 * @NModuleScope SameAccount
 */
define(['N/https', 'N/runtime', 'N/log'], (https, runtime, log) => {
    const NOTIFY_EVENTS = ['create', 'edit', 'xedit', 'approve', 'cancel', 'delete'];

    const param = (name) => {
        const value = runtime.getCurrentScript().getParameter({ name });
        return value === null || value === undefined ? '' : String(value).trim();
    };

    const skippedContexts = () => {
        const keys = (param('custscript_pb_skip_contexts') || 'REST_WEBSERVICES')
            .split(',').map((key) => key.trim()).filter(Boolean);
        return keys.map((key) => runtime.ContextType[key] || key);
    };

    const madeByIntegration = () => {
        if (skippedContexts().indexOf(runtime.executionContext) !== -1) {
            return true;
        }
        const user = runtime.getCurrentUser();
        const role = param('custscript_pb_integration_role');
        const userId = param('custscript_pb_integration_user');
        return (role !== '' && String(user.role) === role) || (userId !== '' && String(user.id) === userId);
    };

    const authorization = () => {
        const secretId = param('custscript_pb_token_secret');
        if (secretId) {
            // The token never appears in the script, its parameters or the execution log.
            return https.createSecureString({ input: 'Bearer {' + secretId + '}' });
        }
        const token = param('custscript_pb_token');
        return token ? 'Bearer ' + token : null;
    };

    const afterSubmit = (context) => {
        try {
            if (NOTIFY_EVENTS.indexOf(String(context.type).toLowerCase()) === -1 || madeByIntegration()) {
                return;
            }
            const url = param('custscript_pb_endpoint_url');
            const auth = authorization();
            if (!url || !auth) {
                log.error({ title: 'primebridge', details: 'endpoint URL or token parameter is not set' });
                return;
            }
            const rec = context.newRecord || context.oldRecord;
            const payload = { recordType: rec.type, id: String(rec.id), event: String(context.type) };
            const response = https.post({
                url,
                body: JSON.stringify(payload),
                headers: { 'Content-Type': 'application/json', Accept: 'application/json', Authorization: auth },
            });
            if (response.code < 200 || response.code >= 300) {
                log.error({
                    title: 'primebridge',
                    details: 'notification for ' + payload.recordType + ' ' + payload.id + ' got HTTP ' + response.code,
                });
            } else {
                log.debug({ title: 'primebridge', details: 'notified ' + payload.recordType + ' ' + payload.id });
            }
        } catch (e) {
            // Never block or fail the user's save: primebridge's poll will still find the change.
            log.error({ title: 'primebridge', details: 'notification failed: ' + (e.name || '') + ' ' + e.message });
        }
    };

    return { afterSubmit };
});
